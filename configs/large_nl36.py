"""Scale Efficiently, Table 4 row "Large 36L": large-nl36 on C4 span corruption with the paper's recipe."""

from scaling.experiments import recipes


def get_config():
    return recipes.scale_efficiently("large-nl36")
