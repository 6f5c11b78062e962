"""Ticket hashing, signing, signer recovery and the winning check, with real keys."""

from __future__ import annotations

import random

import pytest
from Crypto.Hash import keccak as pycryptodome_keccak
from eth_account import Account
from eth_keys import keys

from payments.tickets import (
    SECP256K1_HALF_N,
    Ticket,
    TicketError,
    is_winning_ticket,
    recipient_rand_hash,
    recover_signer,
    sign_ticket,
    validate_ticket,
    verify_signature,
)
from payments.winprob import MAX_WIN_PROB, win_prob

ZERO_ADDRESS = "0x" + "00" * 20
ZERO_HASH = bytes(32)
RAND_HASH = bytes.fromhex("41b1a0649752af1b28b3dc29a1556eee781e4a4c3a1f7f53f90fa834de098c4d")
SECP256K1_N = 2 * SECP256K1_HALF_N + 1


def independent_keccak(data: bytes) -> bytes:
    return pycryptodome_keccak.new(digest_bits=256, data=data).digest()


# pm/ticket_test.go TestHash: fields and upstream's expected hashes
UPSTREAM_HASHES = [
    (dict(face_value=0, win_prob=0, sender_nonce=2**32 - 1),
     "e1393fc7f6de093780674022f96cb8e3872235167d037c04d554e58c0e63d280"),
    (dict(face_value=0, win_prob=0, sender_nonce=1),
     "ce0918ba94518293e9712effbe5fca4f1f431089833a5b8c257cb1e024595f68"),
    (dict(face_value=1, win_prob=500, sender_nonce=0),
     "87ef13f2d37e4d5352a01d3c77b8179d80e0887f1953bfabfd0bfd7b0f689ddd"),
    (dict(face_value=500, win_prob=1, sender_nonce=0),
     "aa4b35071043587992ac8b9dd1b2cf1d8311130e6458cf0b2342484e21af5f5b"),
    (dict(face_value=0, win_prob=0, sender_nonce=0,
          recipient="0x73AEd7b5dEb30222fa896f399d46cC99c7BEe57F"),
     "81e353ae39046e2b77b9f996abbaeed527fda559b61ef90f299c4499dd508ccc"),
    (dict(face_value=0, win_prob=0, sender_nonce=0, recipient_rand_hash=RAND_HASH),
     "be5eaf9a49a39540b9bb02f1a21904f61324a29819e2c032824bfaa10c100b17"),
    (dict(face_value=0, win_prob=0, sender_nonce=0, creation_round=10,
          creation_round_block_hash=RAND_HASH),
     "e502907c16036ab3d11b78c5a2e93c20f3d6415c67f91de4ed01348182b3b2e2"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "expected"), UPSTREAM_HASHES)
def test_upstream_ticket_hashes(fields: dict, expected: str) -> None:
    values = {
        "recipient": ZERO_ADDRESS,
        "sender": ZERO_ADDRESS,
        "recipient_rand_hash": ZERO_HASH,
        **fields,
    }
    ticket = Ticket(**values)
    assert ticket.hash().hex() == expected
    assert ticket.hash() == independent_keccak(ticket.packed())


BLOCK_HASH = bytes.fromhex("7624778dedc75f8b322b9fa1632a610d40b85e106c7d9bf0e743a9ce291b9c6f")


@pytest.mark.parametrize(
    ("round_", "block_hash", "expected"),
    [  # pm/ticket_test.go TestAuxData
        (0, BLOCK_HASH, "00" * 32 + BLOCK_HASH.hex()),
        (5, ZERO_HASH, "00" * 31 + "05" + "00" * 32),
        (0, ZERO_HASH, ""),
        (5, BLOCK_HASH, "00" * 31 + "05" + BLOCK_HASH.hex()),
    ],
)
def test_upstream_aux_data(round_: int, block_hash: bytes, expected: str) -> None:
    ticket = Ticket(ZERO_ADDRESS, ZERO_ADDRESS, 0, 0, 0, ZERO_HASH, round_, block_hash)
    assert ticket.aux_data().hex() == expected


def test_packed_layout_is_big_endian_and_left_padded() -> None:
    ticket = Ticket(
        "0x" + "11" * 20, "0x" + "22" * 20, 0x0102, 0x0304, 7, b"\x33" * 32, 9, b"\x44" * 32
    )
    packed = ticket.packed()
    assert len(packed) == 20 + 20 + 32 * 4 + 64
    assert packed[:20] == b"\x11" * 20 and packed[20:40] == b"\x22" * 20
    assert int.from_bytes(packed[40:72], "big") == 0x0102
    assert int.from_bytes(packed[72:104], "big") == 0x0304
    assert int.from_bytes(packed[104:136], "big") == 7
    assert packed[136:168] == b"\x33" * 32
    assert int.from_bytes(packed[168:200], "big") == 9 and packed[200:] == b"\x44" * 32


def test_ticket_fields_are_range_checked() -> None:
    with pytest.raises(ValueError):
        Ticket(ZERO_ADDRESS, ZERO_ADDRESS, 2**256, 0, 0, ZERO_HASH)
    with pytest.raises(ValueError):
        Ticket(ZERO_ADDRESS, ZERO_ADDRESS, 0, 0, 2**32, ZERO_HASH)
    with pytest.raises(ValueError):
        Ticket(ZERO_ADDRESS, ZERO_ADDRESS, 0, 0, 0, b"\x00" * 31)


@pytest.fixture
def gateway_key() -> Account:
    return Account.create()


@pytest.fixture
def orchestrator_address() -> str:
    return Account.create().address


def make_ticket(sender: str, recipient: str, rand: int, nonce: int = 1) -> Ticket:
    ev, face_value = 29_000_000_000_000, 100_000_000_000_000
    return Ticket(
        recipient=recipient,
        sender=sender,
        face_value=face_value,
        win_prob=win_prob(ev, face_value),
        sender_nonce=nonce,
        recipient_rand_hash=recipient_rand_hash(rand),
        creation_round=4321,
        creation_round_block_hash=BLOCK_HASH,
    )


def test_signed_ticket_recovers_its_signer(gateway_key, orchestrator_address: str) -> None:
    ticket = make_ticket(gateway_key.address, orchestrator_address, rand=12345)
    signature = sign_ticket(ticket, gateway_key.key)
    assert len(signature) == 65 and signature[64] in (27, 28)
    assert recover_signer(ticket.hash(), signature) == gateway_key.address
    assert verify_signature(gateway_key.address, ticket.hash(), signature)
    assert not verify_signature(orchestrator_address, ticket.hash(), signature)
    validate_ticket(orchestrator_address, ticket, signature, 12345)  # no error


def test_signature_is_an_ethereum_personal_message(gateway_key) -> None:
    """eth/accountmanager.go Sign: keccak256("\\x19Ethereum Signed Message:\\n32" + hash)."""
    ticket = make_ticket(gateway_key.address, ZERO_ADDRESS, rand=1)
    signature = sign_ticket(ticket, gateway_key.key)
    digest = independent_keccak(b"\x19Ethereum Signed Message:\n32" + ticket.hash())
    vrs = (signature[64] - 27, int.from_bytes(signature[:32]), int.from_bytes(signature[32:64]))
    public_key = keys.Signature(vrs=vrs).recover_public_key_from_msg_hash(digest)
    assert public_key.to_checksum_address() == gateway_key.address


def test_validate_ticket_errors_in_upstream_order(gateway_key, orchestrator_address) -> None:
    """pm/validator.go ValidateTicket and pm/recipient_test.go TestReceiveTicket_Invalid*."""
    ticket = make_ticket(gateway_key.address, orchestrator_address, rand=777)
    signature = sign_ticket(ticket, gateway_key.key)
    with pytest.raises(TicketError, match=r"^invalid ticket recipient$"):
        validate_ticket(gateway_key.address, ticket, signature, 777)
    zero_sender = make_ticket(ZERO_ADDRESS, orchestrator_address, rand=777)
    with pytest.raises(TicketError, match=r"^invalid ticket sender$"):
        validate_ticket(orchestrator_address, zero_sender, signature, 777)
    with pytest.raises(TicketError, match=r"^invalid recipientRand for ticket recipientRandHash$"):
        validate_ticket(orchestrator_address, ticket, signature, 778)
    tampered = make_ticket(gateway_key.address, orchestrator_address, rand=777, nonce=2)
    with pytest.raises(TicketError, match=r"^invalid ticket signature$"):
        validate_ticket(orchestrator_address, tampered, signature, 777)


def test_go_livepeer_signature_rules(gateway_key) -> None:
    """crypto/verify.go: 65 bytes, v of 27/28, and a low s (the high-s twin is refused)."""
    ticket = make_ticket(gateway_key.address, ZERO_ADDRESS, rand=5)
    signature = sign_ticket(ticket, gateway_key.key)
    r, s, v = signature[:32], int.from_bytes(signature[32:64]), signature[64]
    high_s = r + (SECP256K1_N - s).to_bytes(32) + bytes([55 - v])  # same signer, other s
    with pytest.raises(TicketError, match="s value too high"):
        recover_signer(ticket.hash(), high_s)
    with pytest.raises(TicketError, match="v value must be 27 or 28"):
        recover_signer(ticket.hash(), signature[:64] + bytes([v - 27]))
    with pytest.raises(TicketError, match="invalid signature length"):
        recover_signer(ticket.hash(), signature[:64])
    assert not verify_signature(gateway_key.address, ticket.hash(), high_s)


def test_winning_check_is_keccak_of_sig_then_rand_below_win_prob() -> None:
    rng = random.Random(4)
    signature = rng.randbytes(65)
    rand = rng.getrandbits(256)
    threshold = int.from_bytes(independent_keccak(signature + rand.to_bytes(32)), "big")
    assert not is_winning_ticket(signature, rand, threshold)  # strictly below
    assert is_winning_ticket(signature, rand, threshold + 1)
    assert not is_winning_ticket(signature, rand, 0)
    assert is_winning_ticket(signature, rand, MAX_WIN_PROB)


def test_win_rate_matches_win_probability() -> None:
    """Over many tickets a winProb of 0.29 wins about 29% of the time (6 sigma bound)."""
    rng = random.Random(29)
    wp = win_prob(29_000_000_000_000, 100_000_000_000_000)
    trials = 4000
    wins = sum(
        is_winning_ticket(rng.randbytes(65), rng.getrandbits(256), wp) for _ in range(trials)
    )
    expected, sigma = trials * 0.29, (trials * 0.29 * 0.71) ** 0.5
    assert abs(wins - expected) < 6 * sigma


def test_winning_ticket_end_to_end(gateway_key, orchestrator_address) -> None:
    """pm/recipient_test.go TestReceiveTicket_ValidWinningTicket: winProb = max always wins."""
    ticket = Ticket(
        orchestrator_address,
        gateway_key.address,
        face_value=10**14,
        win_prob=MAX_WIN_PROB,
        sender_nonce=1,
        recipient_rand_hash=recipient_rand_hash(99),
    )
    signature = sign_ticket(ticket, gateway_key.key)
    validate_ticket(orchestrator_address, ticket, signature, 99)
    assert is_winning_ticket(signature, 99, ticket.win_prob)
    losing = Ticket(
        orchestrator_address, gateway_key.address, 10**14, 0, 1, recipient_rand_hash(99)
    )
    assert not is_winning_ticket(sign_ticket(losing, gateway_key.key), 99, losing.win_prob)
