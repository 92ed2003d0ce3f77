from bastion.cli import run

run()
