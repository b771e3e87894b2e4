# The two set-up commands of the README: `make demo` and `make test`.
VENV  ?= .venv
PY    := $(VENV)/bin/python
# The CPU build of torch; on machines with a GPU, set TORCH to the build you want.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: demo test clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $@

# Restore the bundled sample JPEG with the default model and report the gain.
demo: $(STAMP)
	$(VENV)/bin/dequant restore examples/chapel-q15.jpg -o demo-out/chapel.png --overwrite \
		--reference examples/chapel.png
	@echo "restored image written to demo-out/chapel.png"

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) demo-out .pytest_cache
