"""Scale Efficiently, Table 4 row "Small 32EL": small-el32 on C4 span corruption with the paper's recipe."""

from scaling.experiments import recipes


def get_config():
    return recipes.scale_efficiently("small-el32")
