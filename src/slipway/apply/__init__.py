"""Apply: carry out a plan — server-side apply in the order of one table, prune, retries, bounded concurrency."""
