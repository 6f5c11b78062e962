"""go-livepeer's flag names, their Go types and the defaults the pricing check needs.

Source: ``cmd/livepeer/starter/flags.go`` (``NewLivepeerConfig``), ``DefaultLivepeerConfig``
in ``cmd/livepeer/starter/starter.go`` and ``cmd/livepeer/livepeer.go`` (``config``, ``j``,
``version``, ``v``), go-livepeer commit 176aa415. A config file naming any other flag
makes go-livepeer exit at start-up (``config file flag "x" not defined in flag set``).
"""

from __future__ import annotations

BOOL = "bool"
INT = "int"
INT64 = "int64"
FLOAT = "float64"
DURATION = "duration"
STRING = "string"

_BY_TYPE = {
    BOOL: """localVerify httpIngest ignoreMaxPriceIfNeeded orchestrator transcoder gateway
        broadcaster currentManifest testTranscoder hevcDecoding aiServiceRegistry aiWorker
        aiServerless useLiveRunners aiVerboseLogs initializeRound autoAdjustPrice redeemer
        reward monitor metricsPerStream metricsClientIP startupAvailabilityCheck remoteSigner
        remoteSignerAllowNoAuth remoteDiscovery j version""",
    INT: """extraNodes maxAttempts aiRunnerContainersPerGPU liveAISaveNSegments
        maxTransactionReplacements gasLimit maxGasPrice depositMultiplier
        blockPollingInterval""",
    INT64: "minGasPrice",
    FLOAT: "selectRandFreq selectStakeWeight selectPriceWeight selectPriceExpFactor minPerfScore",
    DURATION: """discoveryTimeout aiProcessingRetryTimeout liveAIHeartbeatInterval
        livePaymentInterval liveOutSegmentTimeout liveAICapReportInterval transactionTimeout
        initializeRoundMaxDelay metadataPublishTimeout""",
    STRING: """network rtmpAddr cliAddr httpAddr serviceAddr nodes verifierUrl verifierPath
        orchAddr orchWebhookUrl orchBlocklist orchMinLivepeerVersion orchPerfStatsUrl region
        maxPricePerUnit maxPricePerCapability gatewayHost orchSecret transcodingOptions
        maxSessions nvidia netint liveRunnerConfig liveRunnerProxyUrl aiModels aiModelsDir
        aiRunnerImage aiRunnerImageOverrides aiMinRunnerVersion mediaMTXApiPassword
        liveRunnerAddr liveAITrickleHostForRunner liveAIAuthApiKey liveAIHeartbeatURL
        liveAIHeartbeatHeaders liveAIAuthWebhookUrl liveAICapRefreshModels ethAcctAddr
        ethPassword ethKeystorePath ethOrchAddr ethUrl ethController ticketEV maxFaceValue
        maxTicketEV maxTotalEV pricePerUnit pixelsPerUnit priceFeedAddr pricePerGateway
        pricePerBroadcaster redeemerAddr metadataQueueUri metadataAmqpExchange datadir
        dataDir objectStore recordStore FVfailGsbucket FVfailGskey authWebhookUrl
        remoteSignerUrl remoteSignerHeaders remoteSignerWebhookUrl remoteSignerWebhookHeaders
        kafkaBootstrapServers kafkaUser kafkaPassword kafkaGatewayTopic config v""",
}

FLAG_TYPES: dict[str, str] = {
    name: kind for kind, names in _BY_TYPE.items() for name in names.split()
}

# Flags whose value is a secret: they belong in the environment, never in a config file.
SECRET_FLAGS = frozenset(
    {"orchSecret", "ethPassword", "kafkaPassword", "liveAIAuthApiKey", "mediaMTXApiPassword"}
)

# Defaults (DefaultLivepeerConfig) of the flags the pricing check reads.
DEFAULTS: dict[str, str] = {
    "network": "offchain",
    "ticketEV": "8000000000",
    "maxFaceValue": "0",
    "maxTicketEV": "3000000000000",
    "maxTotalEV": "20000000000000",
    "depositMultiplier": "1",
    "maxPricePerUnit": "0",
    "pixelsPerUnit": "1",
    "autoAdjustPrice": "true",
    "maxGasPrice": "0",
    "orchestrator": "false",
    "gateway": "false",
    "broadcaster": "false",
}


def env_var(flag: str) -> str:
    """The environment variable go-livepeer reads for ``flag`` (ff: ``LP_`` + upper case)."""
    return "LP_" + flag.upper().replace("-", "_").replace(".", "_").replace("/", "_")
