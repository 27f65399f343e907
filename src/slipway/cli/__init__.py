"""The command line: one module per noun, every command calling the engine and printing."""
