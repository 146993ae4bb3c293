//! Fingerprints people can read aloud: the full SHA-256 of some bytes (a root.json, a
//! certificate, a transcript), as hex in groups of four characters and as the 32 words of the
//! PGP word list in eight numbered groups of four (research/ceremonies.md §3).
//!
//! The PGP word list (Juola and Zimmermann, PGPfone) maps each byte to a two-syllable word at
//! even offsets and to a three-syllable word at odd offsets, so that a swapped, dropped or
//! repeated word is heard. The digest is never shortened: a 128-bit prefix would leave 2^64
//! collision attacks open to an insider who prepares two root files.
//!
//! Text and `--json` output show the same thing: [`Fingerprint`] serialises as
//! `{"sha256": hex, "hex_groups": [...], "words": [...]}`.

use serde::ser::SerializeStruct as _;
use sha2::{Digest as _, Sha256};

/// The SHA-256 of some bytes, to be compared by people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    digest: [u8; 32],
}

impl Fingerprint {
    /// The fingerprint of `bytes`: their SHA-256.
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint {
            digest: Sha256::digest(bytes).into(),
        }
    }

    /// The fingerprint of an already computed SHA-256 digest.
    pub fn from_sha256(digest: [u8; 32]) -> Fingerprint {
        Fingerprint { digest }
    }

    /// The 32 bytes of the digest.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The digest as 64 lower-case hex characters.
    pub fn hex(&self) -> String {
        hex::encode(self.digest)
    }

    /// The hex in 16 groups of 4 characters (two bytes each), in order.
    pub fn hex_groups(&self) -> [String; 16] {
        let mut groups: [String; 16] = Default::default();
        for (group, pair) in groups.iter_mut().zip(self.digest.chunks_exact(2)) {
            *group = hex::encode(pair);
        }
        groups
    }

    /// The 32 PGP words, one per byte: bytes at even offsets (0, 2, ...) from the two-syllable
    /// list, bytes at odd offsets from the three-syllable list.
    pub fn words(&self) -> [&'static str; 32] {
        let mut words = [""; 32];
        let parities = [Parity::Even, Parity::Odd].into_iter().cycle();
        for ((word, byte), parity) in words.iter_mut().zip(self.digest).zip(parities) {
            *word = pgp_word(byte, parity);
        }
        words
    }

    /// The 32 words in 8 groups of 4, to be read aloud as "group 1: ...", ..., "group 8: ...".
    pub fn word_groups(&self) -> [[&'static str; 4]; 8] {
        let mut groups = [[""; 4]; 8];
        for (group, words) in groups.iter_mut().zip(self.words().chunks_exact(4)) {
            for (slot, word) in group.iter_mut().zip(words) {
                *slot = word;
            }
        }
        groups
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Fingerprint", 3)?;
        s.serialize_field("sha256", &self.hex())?;
        s.serialize_field("hex_groups", &self.hex_groups())?;
        s.serialize_field("words", &self.words())?;
        s.end()
    }
}

/// Which list a byte's word comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// A byte at an even offset: the two-syllable list.
    Even,
    /// A byte at an odd offset: the three-syllable list.
    Odd,
}

/// The PGP word for `byte` at an offset of the given parity.
pub fn pgp_word(byte: u8, parity: Parity) -> &'static str {
    // 256 rows and a u8 index: the lookup cannot miss.
    let (even, odd) = PGP_WORDS
        .get(usize::from(byte))
        .copied()
        .unwrap_or_default();
    match parity {
        Parity::Even => even,
        Parity::Odd => odd,
    }
}

/// The PGP word list: row `b` holds the word for byte `b` at an even offset (two syllables) and
/// at an odd offset (three syllables), with the original capitalisation ("Algol", "Zulu").
///
/// Taken from IANA's dnssec-keytools, `src/kskm/common/wordlist.py`
/// (https://github.com/iana-org/dnssec-keytools, which cites
/// https://philzimmermann.com/docs/PGP_word_list.pdf), under its licence:
///
/// Copyright (c) 2020 Internet Corporation for Assigned Names and Numbers ("ICANN")
///
/// Permission to use, copy, modify, and distribute this software for any purpose with or
/// without fee is hereby granted, provided that the above copyright notice and this permission
/// notice appear in all copies.
///
/// THE SOFTWARE IS PROVIDED "AS IS" AND ICANN DISCLAIMS ALL WARRANTIES WITH REGARD TO THIS
/// SOFTWARE INCLUDING ALL IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS. IN NO EVENT SHALL
/// ICANN BE LIABLE FOR ANY SPECIAL, DIRECT, INDIRECT, OR CONSEQUENTIAL DAMAGES OR ANY DAMAGES
/// WHATSOEVER RESULTING FROM LOSS OF USE, DATA OR PROFITS, WHETHER IN AN ACTION OF CONTRACT,
/// NEGLIGENCE OR OTHER TORTIOUS ACTION, ARISING OUT OF OR IN CONNECTION WITH THE USE OR
/// PERFORMANCE OF THIS SOFTWARE.
#[rustfmt::skip]
pub const PGP_WORDS: [(&str, &str); 256] = [
    ("aardvark", "adroitness"), // 00
    ("absurd", "adviser"), // 01
    ("accrue", "aftermath"), // 02
    ("acme", "aggregate"), // 03
    ("adrift", "alkali"), // 04
    ("adult", "almighty"), // 05
    ("afflict", "amulet"), // 06
    ("ahead", "amusement"), // 07
    ("aimless", "antenna"), // 08
    ("Algol", "applicant"), // 09
    ("allow", "Apollo"), // 0a
    ("alone", "armistice"), // 0b
    ("ammo", "article"), // 0c
    ("ancient", "asteroid"), // 0d
    ("apple", "Atlantic"), // 0e
    ("artist", "atmosphere"), // 0f
    ("assume", "autopsy"), // 10
    ("Athens", "Babylon"), // 11
    ("atlas", "backwater"), // 12
    ("Aztec", "barbecue"), // 13
    ("baboon", "belowground"), // 14
    ("backfield", "bifocals"), // 15
    ("backward", "bodyguard"), // 16
    ("banjo", "bookseller"), // 17
    ("beaming", "borderline"), // 18
    ("bedlamp", "bottomless"), // 19
    ("beehive", "Bradbury"), // 1a
    ("beeswax", "bravado"), // 1b
    ("befriend", "Brazilian"), // 1c
    ("Belfast", "breakaway"), // 1d
    ("berserk", "Burlington"), // 1e
    ("billiard", "businessman"), // 1f
    ("bison", "butterfat"), // 20
    ("blackjack", "Camelot"), // 21
    ("blockade", "candidate"), // 22
    ("blowtorch", "cannonball"), // 23
    ("bluebird", "Capricorn"), // 24
    ("bombast", "caravan"), // 25
    ("bookshelf", "caretaker"), // 26
    ("brackish", "celebrate"), // 27
    ("breadline", "cellulose"), // 28
    ("breakup", "certify"), // 29
    ("brickyard", "chambermaid"), // 2a
    ("briefcase", "Cherokee"), // 2b
    ("Burbank", "Chicago"), // 2c
    ("button", "clergyman"), // 2d
    ("buzzard", "coherence"), // 2e
    ("cement", "combustion"), // 2f
    ("chairlift", "commando"), // 30
    ("chatter", "company"), // 31
    ("checkup", "component"), // 32
    ("chisel", "concurrent"), // 33
    ("choking", "confidence"), // 34
    ("chopper", "conformist"), // 35
    ("Christmas", "congregate"), // 36
    ("clamshell", "consensus"), // 37
    ("classic", "consulting"), // 38
    ("classroom", "corporate"), // 39
    ("cleanup", "corrosion"), // 3a
    ("clockwork", "councilman"), // 3b
    ("cobra", "crossover"), // 3c
    ("commence", "crucifix"), // 3d
    ("concert", "cumbersome"), // 3e
    ("cowbell", "customer"), // 3f
    ("crackdown", "Dakota"), // 40
    ("cranky", "decadence"), // 41
    ("crowfoot", "December"), // 42
    ("crucial", "decimal"), // 43
    ("crumpled", "designing"), // 44
    ("crusade", "detector"), // 45
    ("cubic", "detergent"), // 46
    ("dashboard", "determine"), // 47
    ("deadbolt", "dictator"), // 48
    ("deckhand", "dinosaur"), // 49
    ("dogsled", "direction"), // 4a
    ("dragnet", "disable"), // 4b
    ("drainage", "disbelief"), // 4c
    ("dreadful", "disruptive"), // 4d
    ("drifter", "distortion"), // 4e
    ("dropper", "document"), // 4f
    ("drumbeat", "embezzle"), // 50
    ("drunken", "enchanting"), // 51
    ("Dupont", "enrollment"), // 52
    ("dwelling", "enterprise"), // 53
    ("eating", "equation"), // 54
    ("edict", "equipment"), // 55
    ("egghead", "escapade"), // 56
    ("eightball", "Eskimo"), // 57
    ("endorse", "everyday"), // 58
    ("endow", "examine"), // 59
    ("enlist", "existence"), // 5a
    ("erase", "exodus"), // 5b
    ("escape", "fascinate"), // 5c
    ("exceed", "filament"), // 5d
    ("eyeglass", "finicky"), // 5e
    ("eyetooth", "forever"), // 5f
    ("facial", "fortitude"), // 60
    ("fallout", "frequency"), // 61
    ("flagpole", "gadgetry"), // 62
    ("flatfoot", "Galveston"), // 63
    ("flytrap", "getaway"), // 64
    ("fracture", "glossary"), // 65
    ("framework", "gossamer"), // 66
    ("freedom", "graduate"), // 67
    ("frighten", "gravity"), // 68
    ("gazelle", "guitarist"), // 69
    ("Geiger", "hamburger"), // 6a
    ("glitter", "Hamilton"), // 6b
    ("glucose", "handiwork"), // 6c
    ("goggles", "hazardous"), // 6d
    ("goldfish", "headwaters"), // 6e
    ("gremlin", "hemisphere"), // 6f
    ("guidance", "hesitate"), // 70
    ("hamlet", "hideaway"), // 71
    ("highchair", "holiness"), // 72
    ("hockey", "hurricane"), // 73
    ("indoors", "hydraulic"), // 74
    ("indulge", "impartial"), // 75
    ("inverse", "impetus"), // 76
    ("involve", "inception"), // 77
    ("island", "indigo"), // 78
    ("jawbone", "inertia"), // 79
    ("keyboard", "infancy"), // 7a
    ("kickoff", "inferno"), // 7b
    ("kiwi", "informant"), // 7c
    ("klaxon", "insincere"), // 7d
    ("locale", "insurgent"), // 7e
    ("lockup", "integrate"), // 7f
    ("merit", "intention"), // 80
    ("minnow", "inventive"), // 81
    ("miser", "Istanbul"), // 82
    ("Mohawk", "Jamaica"), // 83
    ("mural", "Jupiter"), // 84
    ("music", "leprosy"), // 85
    ("necklace", "letterhead"), // 86
    ("Neptune", "liberty"), // 87
    ("newborn", "maritime"), // 88
    ("nightbird", "matchmaker"), // 89
    ("Oakland", "maverick"), // 8a
    ("obtuse", "Medusa"), // 8b
    ("offload", "megaton"), // 8c
    ("optic", "microscope"), // 8d
    ("orca", "microwave"), // 8e
    ("payday", "midsummer"), // 8f
    ("peachy", "millionaire"), // 90
    ("pheasant", "miracle"), // 91
    ("physique", "misnomer"), // 92
    ("playhouse", "molasses"), // 93
    ("Pluto", "molecule"), // 94
    ("preclude", "Montana"), // 95
    ("prefer", "monument"), // 96
    ("preshrunk", "mosquito"), // 97
    ("printer", "narrative"), // 98
    ("prowler", "nebula"), // 99
    ("pupil", "newsletter"), // 9a
    ("puppy", "Norwegian"), // 9b
    ("python", "October"), // 9c
    ("quadrant", "Ohio"), // 9d
    ("quiver", "onlooker"), // 9e
    ("quota", "opulent"), // 9f
    ("ragtime", "Orlando"), // a0
    ("ratchet", "outfielder"), // a1
    ("rebirth", "Pacific"), // a2
    ("reform", "pandemic"), // a3
    ("regain", "Pandora"), // a4
    ("reindeer", "paperweight"), // a5
    ("rematch", "paragon"), // a6
    ("repay", "paragraph"), // a7
    ("retouch", "paramount"), // a8
    ("revenge", "passenger"), // a9
    ("reward", "pedigree"), // aa
    ("rhythm", "Pegasus"), // ab
    ("ribcage", "penetrate"), // ac
    ("ringbolt", "perceptive"), // ad
    ("robust", "performance"), // ae
    ("rocker", "pharmacy"), // af
    ("ruffled", "phonetic"), // b0
    ("sailboat", "photograph"), // b1
    ("sawdust", "pioneer"), // b2
    ("scallion", "pocketful"), // b3
    ("scenic", "politeness"), // b4
    ("scorecard", "positive"), // b5
    ("Scotland", "potato"), // b6
    ("seabird", "processor"), // b7
    ("select", "provincial"), // b8
    ("sentence", "proximate"), // b9
    ("shadow", "puberty"), // ba
    ("shamrock", "publisher"), // bb
    ("showgirl", "pyramid"), // bc
    ("skullcap", "quantity"), // bd
    ("skydive", "racketeer"), // be
    ("slingshot", "rebellion"), // bf
    ("slowdown", "recipe"), // c0
    ("snapline", "recover"), // c1
    ("snapshot", "repellent"), // c2
    ("snowcap", "replica"), // c3
    ("snowslide", "reproduce"), // c4
    ("solo", "resistor"), // c5
    ("southward", "responsive"), // c6
    ("soybean", "retraction"), // c7
    ("spaniel", "retrieval"), // c8
    ("spearhead", "retrospect"), // c9
    ("spellbind", "revenue"), // ca
    ("spheroid", "revival"), // cb
    ("spigot", "revolver"), // cc
    ("spindle", "sandalwood"), // cd
    ("spyglass", "sardonic"), // ce
    ("stagehand", "Saturday"), // cf
    ("stagnate", "savagery"), // d0
    ("stairway", "scavenger"), // d1
    ("standard", "sensation"), // d2
    ("stapler", "sociable"), // d3
    ("steamship", "souvenir"), // d4
    ("sterling", "specialist"), // d5
    ("stockman", "speculate"), // d6
    ("stopwatch", "stethoscope"), // d7
    ("stormy", "stupendous"), // d8
    ("sugar", "supportive"), // d9
    ("surmount", "surrender"), // da
    ("suspense", "suspicious"), // db
    ("sweatband", "sympathy"), // dc
    ("swelter", "tambourine"), // dd
    ("tactics", "telephone"), // de
    ("talon", "therapist"), // df
    ("tapeworm", "tobacco"), // e0
    ("tempest", "tolerance"), // e1
    ("tiger", "tomorrow"), // e2
    ("tissue", "torpedo"), // e3
    ("tonic", "tradition"), // e4
    ("topmost", "travesty"), // e5
    ("tracker", "trombonist"), // e6
    ("transit", "truncated"), // e7
    ("trauma", "typewriter"), // e8
    ("treadmill", "ultimate"), // e9
    ("Trojan", "undaunted"), // ea
    ("trouble", "underfoot"), // eb
    ("tumor", "unicorn"), // ec
    ("tunnel", "unify"), // ed
    ("tycoon", "universe"), // ee
    ("uncut", "unravel"), // ef
    ("unearth", "upcoming"), // f0
    ("unwind", "vacancy"), // f1
    ("uproot", "vagabond"), // f2
    ("upset", "vertigo"), // f3
    ("upshot", "Virginia"), // f4
    ("vapor", "visitor"), // f5
    ("village", "vocalist"), // f6
    ("virus", "voyager"), // f7
    ("Vulcan", "warranty"), // f8
    ("waffle", "Waterloo"), // f9
    ("wallet", "whimsical"), // fa
    ("watchword", "Wichita"), // fb
    ("wayside", "Wilmington"), // fc
    ("willow", "Wyoming"), // fd
    ("woodlark", "yesteryear"), // fe
    ("Zulu", "Yucatan"), // ff
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The vectors of dnssec-keytools' `src/kskm/common/tests/test_wordlist.py`, and the example
    /// of its `docs/usage.md` (`echo "hello, world" | kskm-sha2wordlist`).
    const VECTORS: [(&[u8], &str, &str); 3] = [
        (
            b"mekmitasdigoat",
            "8d9eadc1f305d46f1f203886aa5df98f1ed62fcbacc23d2f6732d24d928703e8",
            "optic onlooker ringbolt recover upset almighty steamship hemisphere billiard butterfat classic letterhead reward filament waffle midsummer berserk speculate cement revival ribcage repellent commence combustion freedom component standard disruptive physique liberty acme typewriter",
        ),
        (
            b"The quick brown fox jumps over the lazy dog",
            "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
            "stopwatch paramount watchword pocketful ahead stethoscope merit molecule gazelle revenue pupil pyramid ruffled antenna buzzard document optic escapade drunken tradition goggles crossover suspense impetus button aftermath stagnate rebellion clamshell retrospect topmost misnomer",
        ),
        (
            b"hello, world\n",
            "853ff93762a06ddbf722c4ebe9ddd66d8f63ddaea97f521c3ecc20da7c976020",
            "music customer waffle consensus flagpole Orlando goggles suspicious virus candidate snowslide underfoot treadmill tambourine stockman hazardous payday Galveston swelter performance revenge integrate Dupont Brazilian concert revolver bison surrender kiwi mosquito facial butterfat",
        ),
    ];

    #[test]
    fn dnssec_keytools_vectors() {
        for (message, hex, words) in VECTORS {
            let fp = Fingerprint::of(message);
            assert_eq!(fp.hex(), hex);
            assert_eq!(fp.words().join(" "), words);
            assert_eq!(fp.hex_groups().concat(), hex);
            assert_eq!(fp.word_groups().concat().join(" "), words);
        }
    }

    #[test]
    fn groups() {
        let fp = Fingerprint::of(b"The quick brown fox jumps over the lazy dog");
        let hex = fp.hex_groups();
        assert_eq!(hex[0], "d7a8");
        assert_eq!(hex[15], "e592");
        assert!(hex.iter().all(|g| g.len() == 4));
        let groups = fp.word_groups();
        assert_eq!(
            groups[0],
            ["stopwatch", "paramount", "watchword", "pocketful"]
        );
        assert_eq!(
            groups[7],
            ["clamshell", "retrospect", "topmost", "misnomer"]
        );
        assert_eq!(Fingerprint::from_sha256(*fp.sha256()), fp);
    }

    #[test]
    fn each_list_has_256_distinct_words_and_the_lists_do_not_meet() {
        let even: BTreeSet<String> = PGP_WORDS.iter().map(|w| w.0.to_lowercase()).collect();
        let odd: BTreeSet<String> = PGP_WORDS.iter().map(|w| w.1.to_lowercase()).collect();
        assert_eq!(even.len(), 256);
        assert_eq!(odd.len(), 256);
        assert!(even.is_disjoint(&odd));
        assert!(PGP_WORDS.iter().all(|(a, b)| {
            [a, b]
                .iter()
                .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic()))
        }));
        // Spot checks of the table's ends and of bytes that are easy to get wrong.
        assert_eq!(PGP_WORDS[0], ("aardvark", "adroitness"));
        assert_eq!(PGP_WORDS[0x09], ("Algol", "applicant"));
        assert_eq!(PGP_WORDS[0xff], ("Zulu", "Yucatan"));
        assert_eq!(pgp_word(0xff, Parity::Even), "Zulu");
        assert_eq!(pgp_word(0xff, Parity::Odd), "Yucatan");
    }

    #[test]
    fn serialises_as_text_shows_it() {
        let fp = Fingerprint::of(b"hello, world\n");
        let json = serde_json::to_value(fp).unwrap();
        assert_eq!(json["sha256"], fp.hex());
        assert_eq!(json["hex_groups"].as_array().unwrap().len(), 16);
        assert_eq!(json["hex_groups"][0], "853f");
        assert_eq!(json["words"].as_array().unwrap().len(), 32);
        assert_eq!(json["words"][31], "butterfat");
        assert_eq!(json.as_object().unwrap().len(), 3);
    }
}
