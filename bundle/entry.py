"""PyInstaller's script for the bundle: everything lives in octopod_control.frozen."""
from octopod_control.frozen import main

main()
