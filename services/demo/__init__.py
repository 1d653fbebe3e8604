"""A demo news site for `make run` and the tests: generated Indonesian and English articles in the
shapes of real outlets, with feeds, sitemaps, section pages and hostile endpoints, on loopback."""
