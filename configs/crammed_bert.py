"""Cramming: the crammed BERT, one day on one device (`--config.budget.amount=SECONDS` for another budget)."""

from scaling.experiments import recipes


def get_config():
    return recipes.cramming()
