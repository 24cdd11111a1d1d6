"""The command shell: one module per `antiphon` subcommand, each with add_arguments(parser) and run(args).
The only code that may import all four parts (engine, plugin, gui, training)."""
