import sys

from operators.panel.run import cli

sys.exit(cli())
