# What every room may use: status codes and error text, the fault seam, float scans, id sorting.
dp_room(base
  src/base/status.c
  src/base/fault.c
  src/base/floatscan.c
  src/base/idsort.c
  src/base/infile.c
)
