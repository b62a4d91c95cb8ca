"""What every layer shares: Condition (`core.condition`), the errors, the name -> component
Registry, hashing, progress and file modes. This package imports no torch on its own, so the
torch-free deployment runtime (`difflab.deploy`) can raise difflab's errors."""
