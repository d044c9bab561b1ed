import sys

from skyloft.cli import main

sys.exit(main())
