"""Recipes: whole runs with a run folder (load the data, build the model, seed, train with the
:class:`~mmgnn.train.Trainer`, write the results), one module per system. A layer above
:mod:`mmgnn.train`, beside :mod:`mmgnn.cli`, which calls them."""
