import sys

from operators.bench.run import cli

sys.exit(cli())
