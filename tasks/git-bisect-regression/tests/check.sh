#!/bin/sh
[ "$(python3 calc.py 1:0.50)" = "0.61" ] && [ "$(python3 calc.py 3:19.99 2:5.25)" = "85.27" ] &&
  [ "$(python3 calc.py 1:1.00)" = "1.21" ] && [ "$(python3 calc.py 2:0.25)" = "0.61" ]
