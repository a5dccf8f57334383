"""The LLM engine shared by `prefdata synthesize` and `prefdata score` (design §5)."""

from prefdata.llm.accounting import BudgetExceeded
from prefdata.llm.engine import ChatRequest, ChatResult, Engine, LLMConfig, RequestFailed, RequestRejected

__all__ = ["BudgetExceeded", "ChatRequest", "ChatResult", "Engine", "LLMConfig", "RequestFailed", "RequestRejected"]
