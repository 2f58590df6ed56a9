# What every room may use: status codes and error text, the fault seam, float scans, id sorting, text lines.
dp_room(base
  src/base/status.c
  src/base/fault.c
  src/base/floatscan.c
  src/base/idsort.c
  src/base/text.c
  src/base/infile.c
)
