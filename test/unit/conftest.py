import sys
from pathlib import Path

# test/msg_fill.py is shared with the rostest scripts that live in test/
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
