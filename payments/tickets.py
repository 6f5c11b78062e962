"""PM tickets: hashing, signing, signer recovery and the winning check.

Follows go-livepeer's ``pm/ticket.go`` (``Ticket.Hash``, ``AuxData``), ``pm/validator.go``
(``ValidateTicket``, ``IsWinningTicket``), ``crypto/verify.go`` (``VerifySig``) and
``eth/accountmanager.go`` (``Sign``: a personal-message signature with v = 27 or 28).
keccak256 and ECDSA come from eth-utils / eth-account (the ``payments`` extra).

The one optional module of ``payments``: nothing else in the package, the pricing check or
the worker imports it, so they run on the standard library alone.
"""

from __future__ import annotations

from dataclasses import dataclass

try:
    from eth_account import Account
    from eth_account.messages import encode_defunct
    from eth_utils import keccak, to_canonical_address, to_checksum_address
except ModuleNotFoundError as exc:  # tested in a subprocess: test_payments_isolation
    raise ModuleNotFoundError(
        f"payments.tickets needs eth-account and eth-utils ({exc.name} is missing): "
        "pip install 'agent-net[payments]'",
        name=exc.name,
    ) from exc

MAX_UINT256 = 2**256 - 1
MAX_UINT32 = 2**32 - 1
MAX_INT64 = 2**63 - 1
ZERO_ADDRESS = b"\x00" * 20
ZERO_HASH = b"\x00" * 32
# secp256k1 group order / 2: go-livepeer refuses signatures with a larger s
SECP256K1_HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2


class TicketError(ValueError):
    """A ticket go-livepeer's validator rejects; the message is go-livepeer's."""


def _uint256(value: int) -> bytes:
    if not 0 <= value <= MAX_UINT256:
        raise ValueError(f"{value} does not fit in 256 bits")
    return value.to_bytes(32, "big")


def _bytes32(value: bytes) -> bytes:
    value = bytes(value)
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return value


@dataclass(frozen=True)
class Ticket:
    """A lottery ticket (``pm.Ticket``): addresses as hex or 20 bytes, integers as ints."""

    recipient: str | bytes
    sender: str | bytes
    face_value: int
    win_prob: int
    sender_nonce: int
    recipient_rand_hash: bytes
    creation_round: int = 0
    creation_round_block_hash: bytes = ZERO_HASH

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipient", to_canonical_address(self.recipient))
        object.__setattr__(self, "sender", to_canonical_address(self.sender))
        object.__setattr__(self, "recipient_rand_hash", _bytes32(self.recipient_rand_hash))
        object.__setattr__(
            self, "creation_round_block_hash", _bytes32(self.creation_round_block_hash)
        )
        _uint256(self.face_value)
        _uint256(self.win_prob)
        if not 0 <= self.sender_nonce <= MAX_UINT32:
            raise ValueError("sender_nonce must fit in 32 bits")
        if not 0 <= self.creation_round <= MAX_INT64:
            raise ValueError("creation_round must be a non-negative 64-bit integer")

    def aux_data(self) -> bytes:
        """``creationRound(32) | creationRoundBlockHash(32)``; empty when both are zero."""
        if self.creation_round == 0 and self.creation_round_block_hash == ZERO_HASH:
            return b""
        return _uint256(self.creation_round) + self.creation_round_block_hash

    def packed(self) -> bytes:
        """The tightly packed fields that are hashed (``Ticket.flatten``)."""
        return b"".join(
            (
                bytes(self.recipient),  # type: ignore[arg-type]
                bytes(self.sender),  # type: ignore[arg-type]
                _uint256(self.face_value),
                _uint256(self.win_prob),
                _uint256(self.sender_nonce),
                self.recipient_rand_hash,
                self.aux_data(),
            )
        )

    def hash(self) -> bytes:
        """keccak256 of ``packed()``: what the sender signs."""
        return keccak(self.packed())


def recipient_rand_hash(recipient_rand: int) -> bytes:
    """The commitment to ``recipientRand``: keccak256 of it as 32 big-endian bytes."""
    return keccak(_uint256(recipient_rand))


def sign_ticket(ticket: Ticket, private_key: bytes | str) -> bytes:
    """Sign the ticket hash as an Ethereum personal message, as a gateway does (v = 27/28)."""
    signed = Account.sign_message(encode_defunct(primitive=ticket.hash()), private_key)
    return bytes(signed.signature)


def recover_signer(message: bytes, signature: bytes) -> str:
    """The checksum address that signed ``message`` as a personal message (``ecrecover``).

    Applies go-livepeer's checks first: 65 bytes, low s, v of 27 or 28.
    """
    if len(signature) != 65:
        raise TicketError("invalid signature length")
    if int.from_bytes(signature[32:64], "big") > SECP256K1_HALF_N:
        raise TicketError("signature s value too high")
    if signature[64] not in (27, 28):
        raise TicketError("signature v value must be 27 or 28")
    try:
        return Account.recover_message(encode_defunct(primitive=message), signature=signature)
    except Exception as exc:  # eth-keys raises several types for unrecoverable points
        raise TicketError(f"invalid signature: {exc}") from None


def verify_signature(address: str | bytes, message: bytes, signature: bytes) -> bool:
    """``crypto.VerifySig``: whether ``address`` signed ``message``."""
    try:
        signer = recover_signer(message, signature)
    except TicketError:
        return False
    return to_canonical_address(signer) == to_canonical_address(address)


def is_winning_ticket(signature: bytes, recipient_rand: int, win_prob: int) -> bool:
    """``validator.IsWinningTicket``: ``keccak256(sig | recipientRand) < winProb``."""
    return int.from_bytes(keccak(bytes(signature) + _uint256(recipient_rand)), "big") < win_prob


def validate_ticket(
    recipient: str | bytes, ticket: Ticket, signature: bytes, recipient_rand: int
) -> None:
    """``validator.ValidateTicket``: raise ``TicketError`` with go-livepeer's message."""
    if ticket.recipient != to_canonical_address(recipient):
        raise TicketError("invalid ticket recipient")
    if ticket.sender == ZERO_ADDRESS:
        raise TicketError("invalid ticket sender")
    if recipient_rand_hash(recipient_rand) != ticket.recipient_rand_hash:
        raise TicketError("invalid recipientRand for ticket recipientRandHash")
    if not verify_signature(ticket.sender, ticket.hash(), signature):
        raise TicketError("invalid ticket signature")


def checksum(address: str | bytes) -> str:
    """An address in EIP-55 checksum form."""
    return to_checksum_address(address)
