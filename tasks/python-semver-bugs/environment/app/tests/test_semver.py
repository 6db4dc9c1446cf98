import unittest

from semverlib import parse, sort_versions, max_version


class TestSemver(unittest.TestCase):
    def test_parse(self):
        v = parse("1.2.3-rc.1+build.5")
        self.assertEqual((v.major, v.minor, v.patch), (1, 2, 3))
        self.assertEqual(v.prerelease, ("rc", "1"))
        self.assertEqual(v.build, ("build", "5"))
        self.assertEqual(str(v), "1.2.3-rc.1+build.5")

    def test_numeric_order(self):
        self.assertLess(parse("1.9.0"), parse("1.10.0"))
        self.assertLess(parse("2.0.0"), parse("10.0.0"))

    def test_prerelease_below_release(self):
        self.assertLess(parse("1.0.0-alpha"), parse("1.0.0"))

    def test_build_ignored(self):
        self.assertEqual(parse("1.0.0+a"), parse("1.0.0+b"))

    def test_invalid(self):
        for s in ["1.2", "01.2.3", "1.2.3-", "1.2.3-a..b", "v1.2.3"]:
            with self.assertRaises(ValueError, msg=s):
                parse(s)

    def test_sort(self):
        self.assertEqual(sort_versions(["1.10.0", "1.2.0", "1.2.0-beta"]), ["1.2.0-beta", "1.2.0", "1.10.0"])
        self.assertEqual(max_version(["0.9.9", "0.10.0-rc.1"]), "0.10.0-rc.1")


if __name__ == "__main__":
    unittest.main()
