import sys

from mathx import mean, median

nums = [float(a) for a in sys.argv[1:]]
print(f"mean={mean(nums):g} median={median(nums):g}")
