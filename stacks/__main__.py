from stacks.cli import app, main
from stacks.scan_gate_cli import register

register(app)
main()
