"""Allow ``python -m rn623_devctl``."""

from rn623_devctl.cli import app

app(prog_name="devctl")
