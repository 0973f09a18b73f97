"""The report's sections, one module each; every function here is pure (inputs from report.inputs -> plain data).

A section is either present with its data or {"ran": False, "message": ...} (report.inputs.not_ran /
unrecognised) saying which stage output is absent or in an unrecognised format. report.context assembles them.
"""
