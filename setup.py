"""Build the native modules as optional extensions: the engine (native/_engine.pyx ->
ledger.engine._c), the history postings (native/_postings.pyx -> ledger.journal._postings_c)
the wire codec (native/_wire.pyx -> ledger.server._wire_c) and the wallet's payment packer
(native/_payments.pyx -> ledger.wallet._payments_c).

With no C compiler or no Cython the install still succeeds and the ledger
runs on the pure-Python reference engine. `cythonize()` drops the `optional`
flag of the extensions it returns, so it is set again afterwards.
"""

from __future__ import annotations

from setuptools import Extension, setup


def native_extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        return []
    extensions = [
        Extension("ledger.engine._c", ["native/_engine.pyx"], extra_compile_args=["-O3", "-fno-strict-aliasing"]),
        Extension("ledger.journal._postings_c", ["native/_postings.pyx"], extra_compile_args=["-O3"]),
        Extension("ledger.server._wire_c", ["native/_wire.pyx"], extra_compile_args=["-O3"]),
        Extension("ledger.wallet._payments_c", ["native/_payments.pyx"], extra_compile_args=["-O3"]),
    ]
    built = cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True, "initializedcheck": False},
    )
    for ext in built:
        ext.optional = True
    return built


setup(ext_modules=native_extensions())
