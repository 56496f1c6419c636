"""Pure logic on a fake clock: no sockets, no database."""
