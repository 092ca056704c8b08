"""Stand-in for the pip bootstrap script ansible-test downloads from its own CI host, which this
network cannot reach. ansible-test runs it with pip-install arguments in a fresh virtualenv; we run
pip from the pip wheel fetched from PyPI next to this file (make sanity puts both in place)."""
import glob
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WHEEL = sorted(glob.glob(os.path.join(HERE, "pip-*.whl")))[-1]
sys.path.insert(0, WHEEL)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install"] + args
runpy.run_module("pip", run_name="__main__", alter_sys=True)
