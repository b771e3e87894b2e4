from dequant.cli import main

main()
