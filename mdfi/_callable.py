"""`mdfi.detect` and `mdfi.classify` are functions and also the modules behind
`python -m mdfi.detect` / `python -m mdfi.classify`.  Importing such a module
makes Python set the package attribute to the module; this keeps it callable."""
import sys
import types


def make_callable(module_name, function):
    """Calling the module (as `mdfi.detect(...)` after `import mdfi.detect`) calls function."""
    class CallableModule(types.ModuleType):
        __doc__ = function.__doc__

        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)
    sys.modules[module_name].__class__ = CallableModule
