import sys

from ogdata.cli import main

sys.exit(main())
