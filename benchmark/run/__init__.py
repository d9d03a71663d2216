"""The run: the driver (`runner.run_suite`), the cell engine (`engine`), the backends that execute cells
(`backends`), content keys (`keys`), the model checks before any attack (`preflight`) and the adaptive evaluation of
defended models (`adaptive`)."""
