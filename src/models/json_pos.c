#include "models/json_pos.h"

void dp_json_line_col(const char *text, const char *at, int *line, int *col)
{
    *line = 1, *col = 1;
    for (const char *p = text; p < at && *p; p++) {
        if (*p == '\n') ++*line, *col = 1;
        else ++*col;
    }
}
