"""More tests of the same API: the ordering example of semver.org section
11, invalid strings, hashing consistent with equality."""
import sys
import unittest

sys.path.insert(0, "/app")
from semverlib import parse, sort_versions, max_version  # noqa: E402


class Hidden(unittest.TestCase):
    def test_spec_order(self):
        chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
                 "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0-0", "2.0.0"]
        for a, b in zip(chain, chain[1:]):
            self.assertLess(parse(a), parse(b), f"{a} < {b}")
            self.assertGreater(parse(b), parse(a), f"{b} > {a}")
        self.assertEqual(sort_versions(list(reversed(chain))), chain)
        self.assertEqual(max_version(chain[:-1]), "2.0.0-0")

    def test_numeric_vs_alnum(self):
        self.assertLess(parse("1.0.0-2"), parse("1.0.0-10"))
        self.assertLess(parse("1.0.0-10"), parse("1.0.0-a"))
        self.assertLess(parse("1.0.0-a.1"), parse("1.0.0-a.1.0"))
        self.assertLess(parse("1.0.0-x-y"), parse("1.0.0-x-z"))

    def test_build(self):
        self.assertEqual(parse("1.2.3-rc.1+b1"), parse("1.2.3-rc.1+b2.x"))
        self.assertEqual(hash(parse("1.2.3+a")), hash(parse("1.2.3+b")))
        self.assertEqual(len({parse("3.0.0+x"), parse("3.0.0"), parse("3.0.0+y.1")}), 1)
        self.assertEqual(str(parse("0.0.1+exp.sha.5114f85")), "0.0.1+exp.sha.5114f85")
        self.assertEqual(parse("1.0.0+001").build, ("001",))

    def test_valid(self):
        for s in ["0.0.0", "1.0.0-0.3.7", "1.0.0-x.7.z.92", "1.0.0-alpha+001", "1.0.0+20130313144700",
                  "1.0.0-beta+exp.sha.5114f85", "1.0.0-0A.is.legal", "10.20.30", "1.0.0--", "2.0.0-rc.1+build.123"]:
            self.assertEqual(str(parse(s)), s)

    def test_invalid(self):
        for s in ["1", "1.2", "1.2.3.4", "01.0.0", "1.01.0", "1.0.01", "1.0.0-01", "1.0.0-alpha.01",
                  "1.0.0+", "1.0.0-", "1.0.0-a..b", "1.0.0+a..b", "1.0.0-a.", "-1.0.0", "1.0.0 ", " 1.0.0",
                  "1.0.0-a_b", "1.0.0+a_b", "a.b.c", "", "1.0.0\n"]:
            with self.assertRaises(ValueError, msg=repr(s)):
                parse(s)


if __name__ == "__main__":
    unittest.main()
