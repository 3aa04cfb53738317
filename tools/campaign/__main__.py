"""``python -m tools.campaign``: the campaign's command line (:mod:`tools.campaign.cli`)."""

import sys

from .cli import run

sys.exit(run())
