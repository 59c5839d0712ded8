"""``python -m rn623_devinfra.provider_emulators``: run the emulators until interrupted."""

import sys

from rn623_devinfra.provider_emulators.cli import main

sys.exit(main())
