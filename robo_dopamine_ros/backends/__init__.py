"""GRM backends behind one small interface: a batch of queries in, one answer per query out."""
