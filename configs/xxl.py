"""Scale Efficiently, Table 4 row "XXL": xxl on C4 span corruption with the paper's recipe."""

from scaling.experiments import recipes


def get_config():
    return recipes.scale_efficiently("xxl")
