"""``python scripts/campaign.py ARGS`` runs ``python -m tools.campaign ARGS`` (the package tools/campaign)."""
import os
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository, where the tools package is
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
os.execv(sys.executable, [sys.executable, "-m", "tools.campaign", *sys.argv[1:]])
