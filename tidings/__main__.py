import sys

from tidings.cli import main

main(["serve", *sys.argv[1:]])
