"""The binding's ctypes declarations against bindings/c/stk.h.

The constants are compared with the header's text; the structure layouts
(size and every field offset) with what gcc computes from the header. Both
catch a header change that the binding did not follow. Skipped when the
header is not in this tree or (for the layouts) when gcc is missing.
"""

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from stk import _lib  # noqa: E402
from stk.flow import FlowStats  # noqa: E402
from stk.names import FTState, MAX_ADDRESSES, MAX_GROUP_LEN, MAX_NAME_LEN  # noqa: E402
from stk.sequence import SequenceType, UT_EXAMPLE_DATA  # noqa: E402
from stk.service import ServiceType, State  # noqa: E402

HEADER = HERE.parent.parent / "c" / "stk.h"


def _enum_values(text):
    """Every NAME = value in the header's enums and #defines."""
    vals = {}
    for m in re.finditer(r"\b(STK_[A-Z0-9_]+)\s*=\s*(-?(?:0x[0-9a-fA-F]+|\d+))", text):
        vals[m.group(1)] = int(m.group(2), 0)
    for m in re.finditer(r"#define\s+(STK_[A-Z0-9_]+)\s+(-?(?:0x[0-9a-fA-F]+|\d+))", text):
        vals[m.group(1)] = int(m.group(2), 0)
    return vals


@unittest.skipUnless(HEADER.is_file(), f"{HEADER} not found")
class HeaderConstantsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = HEADER.read_text()
        cls.vals = _enum_values(cls.text)

    def test_error_codes(self):
        codes = {k: v for k, v in self.vals.items() if re.fullmatch(r"STK_E[A-Z]+", k)}
        self.assertGreater(len(codes), 5)
        for name, v in codes.items():
            with self.subTest(name=name):
                self.assertEqual(getattr(_lib, name), v)
                self.assertIn(v, __import__("stk").errors._CLASSES, f"{name} has no exception class")

    def test_enums(self):
        v = self.vals
        self.assertEqual(_lib.API_MAJOR, v["STK_API_VERSION_MAJOR"])
        for name in ("STK_LOG_DEFAULT", "STK_LOG_DEBUG", "STK_LOG_INFO", "STK_LOG_WARN", "STK_LOG_ERROR",
                     "STK_LOG_OFF", "STK_SEQ_MAX_ELEMENTS", "STK_SEQ_MAX_NAME", "STK_OK"):
            self.assertEqual(getattr(_lib, name), v[name], name)
        for m in SequenceType:
            if "STK_SEQ_" + m.name in v:
                self.assertEqual(m, v["STK_SEQ_" + m.name], m)
        self.assertEqual(UT_EXAMPLE_DATA, v["STK_UT_EXAMPLE_DATA"])
        for m in FTState:
            self.assertEqual(m, v["STK_FT_" + m.name], m)
        for m in State:
            self.assertEqual(m, v["STK_STATE_" + m.name], m)
        for m in ServiceType:
            self.assertEqual(m, v["STK_SERVICE_" + m.name], m)

    def test_documented_limits(self):
        self.assertIn(f"at most {MAX_NAME_LEN} bytes", self.text)
        self.assertIn(f"at most {MAX_ADDRESSES}", self.text)
        self.assertEqual(MAX_GROUP_LEN, 47)  # namesvc.MaxGroupLen; the header does not say

    def test_every_function_declared(self):
        declared = set(re.findall(r"\b(stk_[a-z_0-9]+)\s*\(", self.text))
        declared -= {n for n in declared if n.endswith("_cb")}
        missing = declared - set(_lib._SIGNATURES)
        self.assertFalse(missing, f"functions of stk.h the binding does not declare: {sorted(missing)}")
        extra = set(_lib._SIGNATURES) - declared
        self.assertFalse(extra, f"functions the binding declares that stk.h lacks: {sorted(extra)}")

    def test_stats_fields(self):
        self.assertEqual([f[0] for f in _lib.FlowStats._fields_], list(FlowStats.__dataclass_fields__))


@unittest.skipUnless(HEADER.is_file(), f"{HEADER} not found")
@unittest.skipUnless(shutil.which("gcc") or shutil.which("cc"), "no C compiler")
class HeaderLayoutTest(unittest.TestCase):
    def test_struct_layouts(self):
        cc = shutil.which("gcc") or shutil.which("cc")
        lines = ['#include <stdio.h>', '#include <stddef.h>', '#include "stk.h"', "int main(void) {",
                 'printf("{");']
        first = True
        for cname, cls in _lib.STRUCTS.items():
            parts = [f'\\"size\\": %zu']
            args = [f"sizeof({cname})"]
            for fname, _ in cls._fields_:
                parts.append(f'\\"{fname}\\": %zu')
                args.append(f"offsetof({cname}, {fname})")
            sep = "" if first else ","
            first = False
            lines.append(f'printf("{sep}\\"{cname}\\": {{{", ".join(parts)}}}", {", ".join(args)});')
        lines += ['printf("}\\n");', "return 0; }"]
        with tempfile.TemporaryDirectory(prefix="pybind-layout-") as d:
            src, exe = os.path.join(d, "layout.c"), os.path.join(d, "layout")
            Path(src).write_text("\n".join(lines))
            r = subprocess.run([cc, "-I", str(HEADER.parent), "-o", exe, src], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = json.loads(subprocess.run([exe], capture_output=True, text=True, check=True).stdout)
        for cname, cls in _lib.STRUCTS.items():
            with self.subTest(struct=cname):
                want = {"size": ctypes.sizeof(cls)}
                want.update({f: getattr(cls, f).offset for f, _ in cls._fields_})
                self.assertEqual(got[cname], want)


if __name__ == "__main__":
    unittest.main()
