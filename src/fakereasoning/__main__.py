import sys

from fakereasoning.cli import main

sys.exit(main())
