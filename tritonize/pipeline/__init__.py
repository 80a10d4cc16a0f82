"""The build pipeline: spec -> checkpoint -> export -> validate -> compile(target) -> repository.

Stages hand artifacts down and never reach back: export and engines know nothing of this
package or of the repository layer; the repository layer receives finished files.
"""

from tritonize.pipeline.build import EnginesPending, build, plan
from tritonize.pipeline.options import DEMO_SIZES, BuildOptions

__all__ = ["DEMO_SIZES", "BuildOptions", "EnginesPending", "build", "plan"]
