"""Document models: synthetic pages, the doc-rotation, doc-perspective and doc-dewarp localisers,
and `stn evaluate`.

This layer sits on top of the generic training package. Importing it adds its parts to the
generic registries: the `doc` and `doc-photo` localisers (model.localiser) and the `documents`
dataset (data.dataset = "documents"). `stn train` imports it, so configs can name them.
"""

from stn_align.training import build, data
from stn_align.training.documents.dataset import build_dataset
from stn_align.training.documents.localiser import build_localiser, build_photo_localiser

build.LOCALISERS["doc"] = build_localiser
build.LOCALISERS["doc-photo"] = build_photo_localiser
data.DATASETS["documents"] = build_dataset
