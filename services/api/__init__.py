"""The subscriber API: subscriptions, query tests and past alerts over HTTP."""
