import sys

from operators.bench.run import main

sys.exit(main())
