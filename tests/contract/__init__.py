"""Contract tests: the official provider SDKs, unchanged, talk to the provider doubles of tests/doubles/.

They prove the doubles, not our provider code: huggingface_hub (InferenceClient against the HF router + Hub
double), fal-client (fal double), replicate (Replicate double), horde-sdk (its strict models against our Horde
payloads and the Horde double's answers), and for SiliconFlow, which has no SDK, the API reference in one table.
tavily-python's TavilyClient already talks to the Tavily double in tests/integration/test_grounding.py (through
imagegen's TavilySearch), so it has no test here. hub_requests.py builds huggingface_hub's own request offline,
for the tests that compare our requests with it.
"""
