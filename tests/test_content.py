"""Generated non-photo pictures: every kind draws, and a (seed, index) always draws the same picture."""

import numpy as np

from dequant import content


def test_every_kind_draws_an_rgb_picture_of_the_size_asked():
    drawn = [content.picture(7, index, (96, 64), tuple(content.KINDS)) for index in range(len(content.KINDS))]
    assert [kind for kind, _ in drawn] == list(content.KINDS)  # the kinds take turns
    for kind, image in drawn:
        pixels = np.asarray(image)
        assert image.mode == "RGB" and image.size == (96, 64), kind
        assert pixels.std() > 1, f"{kind} drew a flat picture"


def test_a_seed_and_index_draw_the_same_picture_and_other_seeds_others(tmp_path):
    first = content.write_set(tmp_path / "a", seed=3, count=4, size=(64, 64))
    again = content.write_set(tmp_path / "b", seed=3, count=4, size=(64, 64))
    other = content.write_set(tmp_path / "c", seed=4, count=4, size=(64, 64))
    assert [p.name for p in first] == [p.name for p in again] and all(p.suffix == ".png" for p in first)
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, again))
    assert any(a.read_bytes() != c.read_bytes() for a, c in zip(first, other))


def test_a_set_draws_from_the_mix_unless_told_so_a_new_kind_leaves_older_sets_as_they_were(tmp_path):
    assert [content.picture(1, index, (32, 32))[0] for index in range(len(content.MIX))] == list(content.MIX)
    fields = content.write_set(tmp_path, seed=3, count=2, size=(64, 64), kinds=("field",))
    assert [p.name for p in fields] == ["3-00000-field.png", "3-00001-field.png"]
