import sys

from webapp.cli import main

main(["serve", *sys.argv[1:]])
