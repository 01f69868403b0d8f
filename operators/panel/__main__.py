import sys

from operators.panel.run import main

sys.exit(main())
