"""Pantau: streaming media monitoring. One distribution, one CLI (`pantau`), one folder per service.

pantau.common    shared library: settings, logging, metrics and health, codec, dead letters,
                 shutdown, Kafka and Elasticsearch adapters
pantau.cli       the `pantau` command; each service's subcommand starts it
"""

__version__ = "0.1.0"
