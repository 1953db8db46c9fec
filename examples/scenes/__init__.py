"""Long-tailed multi-object scenes of real handwritten digits (see `generate`)."""

from examples.scenes.generate import NUM_CLASSES as NUM_CLASSES
from examples.scenes.generate import Scenes as Scenes
from examples.scenes.generate import Split as Split
from examples.scenes.generate import make_scenes as make_scenes
from examples.scenes.generate import tail_profile as tail_profile
