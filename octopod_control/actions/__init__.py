"""One module an operation, as Octopod names them; each exposes a plain function."""
