#include <sqlite3.h>

// SQLITE_TRANSIENT is a macro casting -1 to a destructor pointer, which Swift cannot import:
// the same value as a function, for sqlite3_bind_text (SQLite copies the text at once).
static inline sqlite3_destructor_type smime_milter_sqlite_transient(void) { return SQLITE_TRANSIENT; }
