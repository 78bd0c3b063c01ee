"""The doubles' API keys: distinct and greppable, so a test fails if one shows up where it must not."""

SF_KEY = "sk-sfSECRETkey0000000000000000000001"
HF_TOKEN = "hf_SECRETtoken00000000000000000000002"
HORDE_KEY = "hordeSECRETkey0003"
POLLINATIONS_KEY = "sk_pollSECRETkey0004"
FAL_KEY = "falSECRETkeyid0005:falSECRETsecret0005"
REPLICATE_TOKEN = "r8_replicateSECRETtoken0006"
ALL_KEYS = (SF_KEY, HF_TOKEN, HORDE_KEY, POLLINATIONS_KEY, FAL_KEY, REPLICATE_TOKEN)
